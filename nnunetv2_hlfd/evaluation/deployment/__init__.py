"""`nnunetv2_hlfd deployment`: the configurations a user deploys, compared on a held-out labelled test set.

`command` reads the options (stdlib only, for a fast `--help`), `held_out` reads and checks the test set,
`volume_timing` predicts and times whole test volumes, `memory` measures a deployment's memory in a fresh
process, and `comparison` runs them all and writes the report. docs/EVALUATION.md describes the command."""
