"""experiments: presets (hardware profiles, the default research program) and run analysis."""
