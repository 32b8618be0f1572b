"""The three kinds of notification target, each a request made from a message and a judgement of
the answer: the generic JSON webhook (signed, X-Hazwatch-Signature), the DingTalk custom robot
and the WeCom (企业微信) group robot, both markdown, both answering errcode in a 200.

Never retry or sleep here: the sender (sender.py) decides what an Outcome means for the next
attempt. Every request carries the idempotency key in a header (Idempotency-Key, as the IETF
httpapi draft "The Idempotency-Key HTTP Header Field" writes it: a quoted string) and in the
body (the webhook's `idempotency_key`, the robots' markdown footer), so a receiver can tell a
retry from a new message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import quote_plus

import httpx
import orjson

from hazwatch.alerts.messages import Message, dingtalk_markdown, wecom_markdown
from hazwatch.alerts.settings import TargetSettings
from hazwatch.base.retry import parse_retry_after

USER_AGENT = "hazwatch-notify/1"
# The generic webhook's replay window: a receiver refuses a timestamp further than this from its
# own clock (docs/alerts.md "Verifying a webhook").
REPLAY_WINDOW_S = 300

Verdict = Literal["delivered", "transient", "config", "rejected"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an attempt came to.

    delivered: the receiver took it. transient: the receiver or the way to it failed (network,
    timeout, 5xx, 429, a robot's "too fast" or "busy"): the target pauses with backoff.
    config: the target refuses every message (bad secret, unknown token, wrong URL): the
    target pauses for the longest backoff, and the log says what to fix. rejected: this
    message only was refused (too long, malformed): it waits the longest backoff, the
    target goes on with the others.
    """

    verdict: Verdict
    error: str = ""
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class Request:
    url: str
    headers: Mapping[str, str]
    body: bytes


class Notifier(Protocol):
    kind: str

    def request(self, message: Message, now_ms: int) -> Request: ...

    def judge(self, status: int, headers: Mapping[str, str], body: bytes) -> Outcome: ...


def _headers(message: Message) -> dict[str, str]:
    return {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "Idempotency-Key": f'"{message.key}"',
    }


def _http_outcome(status: int, headers: Mapping[str, str], body: bytes) -> Outcome | None:
    """The verdict an HTTP status gives on its own; None for a 2xx (the body decides)."""
    if 200 <= status < 300:
        return None
    text = body[:200].decode(errors="replace")
    error = f"HTTP {status}: {text}".strip()
    if status in (408, 425, 429) or status >= 500:
        return Outcome("transient", error, parse_retry_after(headers.get("retry-after")))
    if status in (401, 403, 404):
        return Outcome("config", error)
    return Outcome("rejected", error)


# -- the generic webhook ------------------------------------------------------------------------


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=` + hex HMAC-SHA256, keyed by the secret, of the timestamp, a dot, the raw body."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_webhook(
    secret: str, headers: Mapping[str, str], body: bytes, now_s: float | None = None
) -> bool:
    """What a receiver checks (docs/alerts.md has this as a snippet): the signature over the
    timestamp and body, and a timestamp within the replay window of its own clock."""
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp, signature = lower.get("x-hazwatch-timestamp", ""), lower.get("x-hazwatch-signature")
    if not timestamp.isdigit() or not signature:
        return False
    now_s = time.time() if now_s is None else now_s
    if abs(now_s - int(timestamp)) > REPLAY_WINDOW_S:
        return False
    return hmac.compare_digest(webhook_signature(secret, timestamp, body), signature)


class WebhookNotifier:
    """POST of the message as JSON, signed with the target's secret."""

    kind = "webhook"

    def __init__(self, target: TargetSettings) -> None:
        self.target = target

    def body(self, message: Message) -> bytes:
        return orjson.dumps(
            {
                "idempotency_key": message.key,
                **message.data,
                "lang": message.lang,
                "title": message.title,
                "text": dingtalk_markdown(message),
            }
        )

    def request(self, message: Message, now_ms: int) -> Request:
        body = self.body(message)
        timestamp = str(now_ms // 1000)
        headers = _headers(message) | {
            "X-Hazwatch-Key": message.key,
            "X-Hazwatch-Timestamp": timestamp,
            "X-Hazwatch-Signature": webhook_signature(self.target.secret, timestamp, body),
        }
        return Request(self.target.url, headers, body)

    def judge(self, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        return _http_outcome(status, headers, body) or Outcome("delivered")


# -- DingTalk -----------------------------------------------------------------------------------


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's `sign` for a robot whose security setting is 加签, as its documentation
    gives it (open.dingtalk.com/document/robots/customize-robot-security-settings): the string
    timestamp + "\\n" + secret, HMAC-SHA256 keyed by the secret, Base64, then URL-encoded (UTF-8;
    its Python sample: urllib.parse.quote_plus(base64.b64encode(hmac_code))). The timestamp is
    in milliseconds and may differ from DingTalk's clock by at most an hour."""
    string_to_sign = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), string_to_sign, hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest))


# DingTalk's answers (errcode in a 200; "应用程序可根据errcode来判断出错的情况，不要依赖errmsg",
# its 全局返回码 page): -1 系统繁忙 ("服务器暂不可用，建议稍后再重试", same page) and 130101 "send
# too fast, exceed 20 times per minute" (the robot's limit, which then throttles it for 10
# minutes) are worth trying again later; 310000 (the security check failed: keyword missing,
# sign not matching, IP not allowed, timestamp off by over an hour), 300001 "token is not
# exist" and 300005 (a group the token is not for) are the target's configuration; any other
# errcode refuses this message. docs/alerts.md lists where each was read.
DINGTALK_TRANSIENT = {-1: None, 130101: 60.0}
DINGTALK_CONFIG = frozenset({310000, 300001, 300005})


def _errcode(body: bytes) -> tuple[int, str] | None:
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(answer, dict) or not isinstance(answer.get("errcode"), int):
        return None
    return int(answer["errcode"]), str(answer.get("errmsg", ""))


class DingTalkNotifier:
    """POST of a markdown message to the robot's webhook, with timestamp and sign when the
    target has a secret (open.dingtalk.com/document/group/custom-robot-access)."""

    kind = "dingtalk"

    def __init__(self, target: TargetSettings) -> None:
        self.target = target

    def url(self, now_ms: int) -> str:
        if not self.target.secret:
            return self.target.url
        sep = "&" if "?" in self.target.url else "?"
        sign = dingtalk_sign(self.target.secret, now_ms)
        return f"{self.target.url}{sep}timestamp={now_ms}&sign={sign}"

    def body(self, message: Message) -> bytes:
        return orjson.dumps(
            {
                "msgtype": "markdown",
                "markdown": {"title": message.title, "text": dingtalk_markdown(message)},
                "at": {"isAtAll": False},
            }
        )

    def request(self, message: Message, now_ms: int) -> Request:
        return Request(self.url(now_ms), _headers(message), self.body(message))

    def judge(self, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        return _robot_outcome(status, headers, body, DINGTALK_TRANSIENT, DINGTALK_CONFIG)


# -- WeCom --------------------------------------------------------------------------------------

# WeCom's answers (errcode in a 200; its global error codes, developer.work.weixin.qq.com/
# document/path/90313): -1 系统繁忙 and 45009 "api freq out of limit" (the robot's 20 messages a
# minute, document/path/91770) are worth trying again later; 93000 "invalid webhook url" (a
# wrong or deleted robot key) is the target's configuration; any other refuses this message.
WECOM_TRANSIENT = {-1: None, 45009: 60.0}
WECOM_CONFIG = frozenset({93000})


class WeComNotifier:
    """POST of a markdown message to the group robot's webhook (its key is in the URL)."""

    kind = "wecom"

    def __init__(self, target: TargetSettings) -> None:
        self.target = target

    def body(self, message: Message) -> bytes:
        return orjson.dumps(
            {"msgtype": "markdown", "markdown": {"content": wecom_markdown(message)}}
        )

    def request(self, message: Message, now_ms: int) -> Request:
        return Request(self.target.url, _headers(message), self.body(message))

    def judge(self, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        return _robot_outcome(status, headers, body, WECOM_TRANSIENT, WECOM_CONFIG)


def _robot_outcome(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    transient: Mapping[int, float | None],
    config: frozenset[int],
) -> Outcome:
    """A robot's answer: the HTTP status first, then errcode, which must be 0 even in a 200."""
    by_status = _http_outcome(status, headers, body)
    if by_status is not None:
        return by_status
    found = _errcode(body)
    if found is None:
        return Outcome("transient", f"HTTP {status} without an errcode: {body[:200]!r}")
    code, text = found
    if code == 0:
        return Outcome("delivered")
    error = f"errcode {code}: {text}"
    if code in transient:
        return Outcome("transient", error, transient[code])
    if code in config:
        return Outcome("config", error)
    return Outcome("rejected", error)


NOTIFIERS: Mapping[str, type[WebhookNotifier] | type[DingTalkNotifier] | type[WeComNotifier]] = {
    "webhook": WebhookNotifier,
    "dingtalk": DingTalkNotifier,
    "wecom": WeComNotifier,
}


def notifier(target: TargetSettings) -> Notifier:
    return NOTIFIERS[target.kind](target)


def send(client: httpx.Client, notifier: Notifier, message: Message, now_ms: int) -> Outcome:
    """One attempt: the request, within the client's timeout, and its verdict."""
    request = notifier.request(message, now_ms)
    try:
        answer = client.post(request.url, content=request.body, headers=dict(request.headers))
    except httpx.TimeoutException as exc:
        return Outcome("transient", f"timed out: {type(exc).__name__}")
    except httpx.HTTPError as exc:
        return Outcome("transient", f"{type(exc).__name__}: {exc}")
    return notifier.judge(answer.status_code, answer.headers, answer.content)
