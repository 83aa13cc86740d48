# gw/mqtt  The gateway's MQTT client: client.MQTTClient (resilience) over session.Link
# (one connection).  Topic layout and Home Assistant discovery live elsewhere in gw.
# SPDX-License-Identifier: MIT

from .client import MQTTClient  # noqa: F401
