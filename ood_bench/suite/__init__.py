"""Running experiments: suite files (their YAML in ``ood_bench/suites/``), where runs live (``places``), their
estimates, one run (``runner``), the launchers (``run_suite``), calibration, sweeps."""
