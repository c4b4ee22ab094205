import { describe, expect, it } from "vitest";

import { createSessionId, isValidSessionId } from "../src/index.js";
import { UUID_V4 } from "./helpers.js";

describe("createSessionId", () => {
  it("uses crypto.randomUUID where there is one", () => {
    expect(createSessionId({ randomUUID: () => "00000000-0000-4000-8000-000000000000" })).toBe(
      "00000000-0000-4000-8000-000000000000",
    );
    expect(createSessionId()).toMatch(UUID_V4);
  });

  it("falls back to getRandomValues (insecure contexts), then Math.random", () => {
    const fromBytes = Array.from({ length: 50 }, () =>
      createSessionId({ getRandomValues: (array) => globalThis.crypto.getRandomValues(array) }),
    );
    const fromMath = Array.from({ length: 50 }, () => createSessionId({}));
    for (const id of [...fromBytes, ...fromMath]) {
      expect(id).toMatch(UUID_V4);
      expect(isValidSessionId(id)).toBe(true);
    }
    expect(new Set([...fromBytes, ...fromMath]).size).toBe(100);
  });

  it("knows the ids the server accepts", () => {
    expect(isValidSessionId("session-1_A")).toBe(true);
    expect(isValidSessionId("a".repeat(128))).toBe(true);
    expect(isValidSessionId("a".repeat(129))).toBe(false);
    expect(isValidSessionId("")).toBe(false);
    expect(isValidSessionId("has space")).toBe(false);
  });
});
