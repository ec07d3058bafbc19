"""Figures people look at: a series with detector scores and intervals, a grid of rule-bank samples."""
