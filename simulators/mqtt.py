"""The MQTT connection every simulator uses (aiomqtt), with the device's status as last will.

Never publish below QoS 1: tests count what the broker acknowledged.
"""

from __future__ import annotations

import ssl
from urllib.parse import unquote, urlsplit

import aiomqtt
import orjson

from hazwatch.devices.topics import build_topic

# How long a publish waits for the broker's acknowledgement before the simulator gives up.
# aiomqtt's default is 10 s; a device keeps an unacknowledged QoS 1 message and waits, and a
# broker on a loaded machine (CI on 2 shared cores) acknowledged a window of a few hundred
# publishes in more than 10 s, which failed a whole custody scenario.
ACK_TIMEOUT_S = 120.0


def status_topic(site: str, family: str, device: str) -> str:
    return build_topic(site, family, device, "status")


def device_client(
    url: str, site: str, family: str, device: str, *, client_id: str | None = None
) -> aiomqtt.Client:
    """An aiomqtt client for one device whose last will is a retained `{"online": false}`."""
    parts = urlsplit(url)
    tls = ssl.create_default_context() if parts.scheme == "mqtts" else None
    will = aiomqtt.Will(
        status_topic(site, family, device), orjson.dumps({"online": False}), qos=1, retain=True
    )
    return aiomqtt.Client(
        parts.hostname or "127.0.0.1",
        parts.port or (8883 if tls else 1883),
        identifier=client_id or f"sim-{site}-{family}-{device}",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        tls_context=tls,
        will=will,
        max_queued_outgoing_messages=None,
        timeout=ACK_TIMEOUT_S,
    )


async def announce_online(client: aiomqtt.Client, site: str, family: str, device: str) -> None:
    await client.publish(
        status_topic(site, family, device), orjson.dumps({"online": True}), qos=1, retain=True
    )
