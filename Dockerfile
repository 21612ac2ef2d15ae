# syntax=docker/dockerfile:1
# tawasul: one image, one dist/main.js, any role (APP_ROLE=receiver|worker|all, or --role=<x>).
#   docker build -t tawasul .
#   docker run --env-file .env -p 3000:3000 tawasul                # role from APP_ROLE (default all)
#   docker run --env-file .env tawasul --role=worker               # role as an argument
# CI runs the suite on the major named here (.ci/run reads this line), so the image ships the
# runtime that was tested. Change it here, not with --build-arg, so CI follows.
ARG NODE_VERSION=24

FROM node:${NODE_VERSION}-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY nest-cli.json tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production \
    PORT=3000
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY config ./config
# The image's built-in non-root user (uid 1000); Kubernetes manifests pin runAsUser: 1000 to match.
USER node
EXPOSE 3000
# Slim images have no curl: Node's fetch probes liveness (never Redis, see README "Health").
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health/live').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "dist/main.js"]
