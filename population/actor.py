"""PopulationActor: the Population as a Ray actor, the single writer of a run's state.

The orchestrator and the workers talk to it instead of holding archive state themselves. Calls run
one at a time (Ray's default for an actor), which is what keeps it the only writer. Without Ray, use
population.Population directly: it is the same class.
"""

from __future__ import annotations

import ray

from population.population import Population

# num_cpus=0: it does little work, and must not take a CPU a training worker could use.
PopulationActor = ray.remote(num_cpus=0)(Population)
