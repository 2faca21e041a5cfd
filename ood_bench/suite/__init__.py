"""Running experiments: suite files (their YAML in ``ood_bench/suites/``), the runner, calibration, sweeps."""
