"""Real-browser tests of the web console: Chromium, driven by Playwright, against a real serve."""
