"""The thin rclpy layer the nodes go through (`adapter.py`; with `bag_play/player.py` the only rclpy importers)."""
