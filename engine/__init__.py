"""Headless core of tfwizard: detect, inspect, plan, convert, verify.

Nothing here imports a UI library. TensorFlow is imported only by the modules
that convert, and only inside the functions that need it.
"""
