"""How the project starts Debian's Chromium (see the machine notes): never a browser Playwright
downloads, no background networking (the network here is closed), a headless throwaway profile."""

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
