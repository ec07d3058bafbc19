"""The bottom layer: errors, settings and the small numeric helpers every other layer shares.

Nothing here imports another part of the package, so any layer may import from it.
"""
