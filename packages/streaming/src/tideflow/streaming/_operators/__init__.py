"""The physical operators a stage is planned into (see :mod:`tideflow.streaming._planner`):
each owns its queue, its calls in flight and its actors behind one small interface."""
