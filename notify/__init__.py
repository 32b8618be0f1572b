"""Notifications: the HTTP senders of alert changes (generic webhook, DingTalk and WeCom group
robots) and the sender that delivers them from the alert store's outbox.
"""
