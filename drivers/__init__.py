"""Device drivers. Each sits behind a small backend interface with a real
backend and a simulated sibling, the way gpiozero swaps pin factories."""
