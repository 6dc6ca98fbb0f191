"""Pose backends, joint layouts and the pose-extraction stage."""
