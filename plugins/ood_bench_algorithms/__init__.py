"""The built-in post-training algorithms of ood-bench.

Each module is its own plugin, registered through an entry point in the
``ood_bench`` group exactly as a third-party package would be; the core never
imports them by name, and any of them can be switched off with
``OOD_BENCH_DISABLE_PLUGINS=grpo,ppo``.
"""
