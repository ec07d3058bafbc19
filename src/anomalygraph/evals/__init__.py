"""Metrics, thresholds, intervals and plots: the yardstick every accuracy claim rests on."""
