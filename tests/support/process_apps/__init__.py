"""Small programs the process-model tests run in a subprocess (each forks, so never pytest)."""
