/**
 * Starts two real chatbot servers (scripted model, each with its own SQLite file, no tool
 * servers) on 127.0.0.1 for the whole test run: one without sign-in (AUTH=none,
 * `inject("backendUrl")`) and one with anonymous and Ethereum sign-in
 * (`inject("authBackendUrl")`). Both stop at the end.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    backendUrl: string;
    authBackendUrl: string;
  }
}

/** The repository root: this file is frontend/client/test/global-setup.ts. */
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const READY_LINE = "Uvicorn running on";

/** A port the kernel just handed out and released. */
export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => {
        done(port);
      });
    });
  });
}

/** Settings of the server with sign-in; tests sign in with them (chain id 31337 is `testnet`). */
const AUTH_ENV = {
  AUTH: "anonymous,siwe",
  AUTH_SECRET: "client-tests-secret-0123456789abcdef", // ≥ 32 characters
  RATE_LIMIT_AUTH: "", // every test signs in from 127.0.0.1
};

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const servers = await Promise.allSettled([startServer({}), startServer(AUTH_ENV)]);
  const started = servers.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  const stopAll = async () => {
    await Promise.all(started.map((server) => server.stop()));
  };
  const failed = servers.find((s) => s.status === "rejected");
  if (failed) {
    await stopAll();
    throw failed.reason;
  }
  const [plain, withAuth] = started;
  if (!plain || !withAuth) throw new Error("unreachable: both servers started");
  project.provide("backendUrl", plain.url);
  project.provide("authBackendUrl", withAuth.url);
  return stopAll;
}

interface StartedServer {
  url: string;
  stop: () => Promise<void>;
}

/** One server with these settings on top of the common ones, once it listens. */
async function startServer(extraEnv: Record<string, string>): Promise<StartedServer> {
  const port = await freePort();
  const workdir = mkdtempSync(join(tmpdir(), "chatbot-client-test-"));
  const server = spawn(
    join(REPO, ".venv", "bin", "python"),
    ["-m", "chatbot", "serve", "--host", "127.0.0.1", "--port", String(port)],
    {
      cwd: workdir, // no stray .env or var/ from the repository
      stdio: ["ignore", "ignore", "pipe"],
      env: {
        ...process.env,
        LLM_PROVIDER: "scripted",
        SCRIPTED_TOKENS_PER_SECOND: "20",
        DATABASE_URL: `sqlite:///${join(workdir, "chatbot.db")}`,
        MCP_CONFIG: join(REPO, "tests", "no-mcp.json"),
        BUSY_POLICY: "reject",
        SSE_KEEPALIVE_SECONDS: "0.5",
        RATE_LIMIT_MESSAGES: "", // every test talks from 127.0.0.1
        NETWORKS: JSON.stringify({
          testnet: { chain_id: 31337, rpc_url: "http://127.0.0.1:8545" },
          sepolia: { chain_id: 11155111, rpc_url: "http://127.0.0.1:8546" },
        }),
        DEFAULT_NETWORK: "testnet",
        ...extraEnv,
      },
    },
  );

  // Keep reading stderr for the whole run (a full pipe would block the server); keep
  // the tail to explain a failed start.
  let log = "";
  const ready = new Promise<void>((done, fail) => {
    const timer = setTimeout(() => {
      fail(new Error(`server did not start within 30 s:\n${log}`));
    }, 30_000);
    server.stderr.setEncoding("utf8");
    server.stderr.on("data", (chunk: string) => {
      log = (log + chunk).slice(-20_000);
      if (log.includes(READY_LINE)) {
        clearTimeout(timer);
        done();
      }
    });
    server.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`server exited (${String(code)}) before listening:\n${log}`));
    });
    server.once("error", (error) => {
      clearTimeout(timer);
      fail(error);
    });
  });

  try {
    await ready;
  } catch (error) {
    server.kill("SIGKILL");
    rmSync(workdir, { recursive: true, force: true });
    throw error;
  }
  const stop = async () => {
    if (server.exitCode === null && server.signalCode === null) {
      const exited = new Promise((done) => server.once("exit", done));
      server.kill("SIGTERM");
      const timer = setTimeout(() => server.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(workdir, { recursive: true, force: true });
  };
  return { url: `http://127.0.0.1:${String(port)}`, stop };
}
