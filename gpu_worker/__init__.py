"""GPU workers: take a job (over HTTP or straight from Redis), render, store, complete."""
