"""How the evaluation commands time nnU-Net's predictions and judge the times: nnU-Net's predictor as both the
benchmark and the deployment comparison load and run it (`prediction`), the benchmark's patch and volume timings
of every model (`model_speed`), and when a speed ratio is a verdict rather than noise (`verdict`, stdlib only)."""
