"""Programs that run at the edge, next to the hardware, not in the service: the camera agent
(camera_agent.py: OpenCV frame metrics, MQTT, snapshot upload) and its metrics
(video_metrics.py). They speak the device contract (hazwatch.devices) like any device."""
