"""The Faust pipeline of tests/faust/app.py and its tests share these."""

MIN_AMOUNT = 10.0  # the agent keeps orders of at least this amount
PARTITIONS = 2  # of the orders topic, and so of the table's changelog
