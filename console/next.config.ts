import type { NextConfig } from "next";

// A static export (out/), served by the ingress at /dashboard: no Node process in production.
// A static export's base path is fixed when it is built: an app under another route prefix
// builds one with CONSOLE_BASE_PATH=<prefix>/dashboard into another folder
// (CONSOLE_DIST_DIR, relative to console/) and names that folder in its `console_dir`.
const config: NextConfig = {
  output: "export",
  basePath: process.env.CONSOLE_BASE_PATH ?? "/dashboard",
  ...(process.env.CONSOLE_DIST_DIR ? { distDir: process.env.CONSOLE_DIST_DIR } : {}),
  trailingSlash: true,
  images: { unoptimized: true },
  poweredByHeader: false,
  reactStrictMode: true,
};

export default config;
