"""The HJ 212 link rule, declared once, and its check: a peer that keeps sending packets the
gateway refuses (unknown MN, wrong PW, a CP that does not decrypt) is someone trying stations.

Never read a clock or a store here: refusal times are arguments.
"""

from __future__ import annotations

from collections import deque

from hazwatch.alerts.model import AlertSignal, Severity
from hazwatch.alerts.rules import RuleSpec, defaults_of
from hazwatch.streams.hj212.settings import LinkSettings

AUTH_REFUSED = "hj212_auth_refused"
NS_PER_S = 1_000_000_000
MAX_PEERS = 10_000  # peers whose recent refusals are remembered; the oldest forgotten first

RULE_SPECS: tuple[RuleSpec, ...] = (
    RuleSpec(
        AUTH_REFUSED,
        "hj212",
        Severity.MAJOR,
        "peer",
        "HJ 212 访问被拒：同一地址在时间窗内多次发送 MN 未登记、访问密码错误或无法解密的报文"
        "（默认 10 分钟内 5 次），疑似冒用站点写入数据",
        "one peer address sent HJ 212 packets refused for an unregistered MN, a wrong PW or a CP "
        "that does not decrypt, again and again (by default 5 times within 10 minutes): "
        "someone may be trying to write a station's data",
        defaults_of(LinkSettings, "refused_alert_count", "refused_window_s"),
    ),
)


class RefusedPeers:
    """Each peer's recent refusals; `refused` answers the alert to raise, when one is due."""

    def __init__(self, settings: LinkSettings | None = None) -> None:
        self.settings = settings or LinkSettings()
        self._seen: dict[str, deque[int]] = {}

    def refused(self, peer: str, reason: str, mn: str, at_ns: int) -> AlertSignal | None:
        window_ns = int(self.settings.refused_window_s * NS_PER_S)
        times = self._seen.pop(peer, None) or deque()
        self._seen[peer] = times  # most recent last: the first key is the longest quiet
        times.append(at_ns)
        while times and at_ns - times[0] > window_ns:
            times.popleft()
        if len(self._seen) > MAX_PEERS:
            del self._seen[next(iter(self._seen))]
        if len(times) < self.settings.refused_alert_count:
            return None
        minutes = self.settings.refused_window_s / 60
        return AlertSignal(
            AUTH_REFUSED,
            peer,
            Severity.MAJOR,
            f"地址 {peer} 在 {minutes:g} 分钟内 {len(times)} 次发送被拒的 HJ 212 报文"
            f"（最近一次：MN {mn}，{reason}）",
            "",
            at_ns,
            {"peer": peer, "refusals": len(times), "last_reason": reason, "last_mn": mn},
        )
