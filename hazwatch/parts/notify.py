"""The notifications part: the sender (hazwatch.notify.sender) that delivers the alert store's
outbox to the targets of the settings' [[alerts.targets]] and escalates alerts nobody
acknowledged, with its delivery records, the rules' names and their findings' words (each
part's text.py) and the registry's site and device names; one background worker, started and
stopped with the service. A rule the settings name that no part declares is refused when the
part is built, before the service starts.

hazwatch.app builds it; nothing else imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import APIRouter

from hazwatch.alerts.delivery import DeliveryStore
from hazwatch.alerts.rules import RuleSpec
from hazwatch.alerts.settings import AlertSettings
from hazwatch.alerts.store import AlertStore
from hazwatch.base.errors import ConfigError
from hazwatch.devices.registry import RegistryContext
from hazwatch.ingest.interfaces import StreamProcessor
from hazwatch.notify.sender import Sender
from hazwatch.parts import PartContext, Worker
from hazwatch.settings import Settings
from hazwatch.streams.catalog import rule_details, rule_specs


class RegistryNames:
    """Site and device names from the stored registry (refreshed as the registry changes);
    None where the registry has no name (a device's id is then shown as it is)."""

    def __init__(self, registry: RegistryContext) -> None:
        self.registry = registry

    def site(self, site: str) -> str | None:
        self.registry.refresh()
        entry = self.registry.current.sites.get(site)
        return entry.name or None if entry is not None else None

    def device(self, site: str, device: str) -> str | None:
        current = self.registry.current
        for table in (current.stations, current.cameras, current.readers, current.scales):
            entry = table.get((site, device))
            if entry is not None:
                name = getattr(entry, "name", None)  # the registry names sites; devices may follow
                return str(name) if name else None
        return None


def link_base_url(settings: Settings) -> str:
    """Where officers reach the API: the setting, else this service's own address."""
    if settings.alerts.link_base_url:
        return settings.alerts.link_base_url.rstrip("/")
    host = "127.0.0.1" if settings.api_host in ("0.0.0.0", "::", "") else settings.api_host
    return f"http://{host}:{settings.api_port}"


def check_rule_names(settings: AlertSettings, rules: Mapping[str, RuleSpec]) -> None:
    """A rule a target, an escalation delay or a pending period names must be declared: a
    misspelt rule would filter every message out, never escalate, or notify at once, without a
    word (ConfigError, one line)."""
    named = [
        (f"alerts.targets[{t.name}].rules", rule) for t in settings.targets for rule in t.rules
    ]
    named += [("alerts.escalate_rule_after_min", rule) for rule in settings.escalate_rule_after_min]
    parts = {spec.part for spec in rules.values()}
    for key in settings.pending_s:  # a rule, or a part: every rule of it
        if key not in rules and key not in parts:
            raise ConfigError(
                f"setting alerts.pending_s: {key!r} is no rule nor part (parts: "
                f"{', '.join(sorted(parts))}; rules: {', '.join(sorted(rules))})"
            )
    for where, rule in named:
        if rule not in rules:
            raise ConfigError(
                f"setting {where}: {rule!r} is no rule (known: {', '.join(sorted(rules))})"
            )


class NotifyPart:
    """The notification sender over the service's one AlertStore."""

    name = "notify"

    def __init__(self, ctx: PartContext) -> None:
        if not isinstance(ctx.alerts, AlertStore):
            raise TypeError(
                "the notify part needs the service's AlertStore as PartContext.alerts, "
                f"got {type(ctx.alerts).__name__}"
            )
        rules = rule_specs()
        check_rule_names(ctx.settings.alerts, rules)
        self.deliveries = DeliveryStore(ctx.db)
        self.sender = Sender(
            ctx.settings.alerts,
            ctx.alerts,
            self.deliveries,
            rules=rules,
            details=rule_details(),
            names=RegistryNames(RegistryContext(ctx.db)),
            base_url=link_base_url(ctx.settings),
            holder=ctx.settings.mqtt_client_id,
        )

    def processors(self) -> list[StreamProcessor]:
        return []

    def routers(self) -> list[APIRouter]:
        return []

    def api_stores(self) -> dict[str, object]:
        return {}

    def workers(self) -> list[Worker]:
        return [self.sender]
