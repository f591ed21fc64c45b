"""How a plan runs: the executor's state, its scheduling steps (plain functions), the
backpressure policy and the commit modes. The loop that drives them is
:mod:`tideflow.streaming._executor`."""
