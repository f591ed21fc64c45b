"""Tideflow's asynchronous RL trainer: rollout and training decoupled by a bounded buffer."""
