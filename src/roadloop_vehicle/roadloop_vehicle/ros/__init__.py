"""The one thin rclpy adapter every roadloop node goes through (the only module that imports rclpy)."""
