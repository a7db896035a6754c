"""evolve: the command line and the run. Wires population, mutators and trainer; talks to the user."""
