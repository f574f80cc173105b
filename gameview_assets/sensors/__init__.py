"""Sensors: start runs when uploads complete, call the studio app back when runs end."""

from gameview_assets.sensors.callback_sensors import (
    callback_outbox_sensor,
    production_canceled_sensor,
    production_completed_sensor,
    production_failed_sensor,
)
from gameview_assets.sensors.upload_sensor import upload_sensor

all_sensors = [
    upload_sensor,
    production_completed_sensor,
    production_failed_sensor,
    production_canceled_sensor,
    callback_outbox_sensor,
]
