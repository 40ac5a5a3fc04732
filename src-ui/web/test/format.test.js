import { describe, expect, test } from "vitest";
import { ago, duration, shortHash, until } from "../src/format.js";

describe("format", () => {
  test("durations read like the decision buttons", () => {
    expect(duration(900)).toBe("15 minutes");
    expect(duration(3600)).toBe("1 hour");
    expect(duration(28800)).toBe("8 hours");
    expect(duration(86400 * 2)).toBe("2 days");
    expect(duration(90)).toBe("2 minutes");
    expect(duration(5)).toBe("5 seconds");
  });

  test("expiry and last use are relative to now", () => {
    expect(until(null, 100)).toBe("until revoked");
    expect(until(100 + 3540, 100)).toBe("in 59 min");
    expect(until(99, 100)).toBe("expired");
    expect(ago(null, 100)).toBe("never");
    expect(ago(98, 100)).toBe("just now");
    expect(ago(100 - 7200, 100)).toBe("2 h ago");
  });

  test("hashes are shortened to a prefix", () => {
    expect(shortHash("9f86d081884c7d659a2feaa0")).toBe("sha256:9f86d081884c");
    expect(shortHash("")).toBe("");
  });
});
