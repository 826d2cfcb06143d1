import type { NextConfig } from "next";

// A static export (`out/`), served by the ingress at /dashboard: no Node process in production.
const config: NextConfig = {
  output: "export",
  basePath: "/dashboard",
  trailingSlash: true,
  images: { unoptimized: true },
  poweredByHeader: false,
  reactStrictMode: true,
};

export default config;
