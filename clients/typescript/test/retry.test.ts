import assert from "node:assert/strict";
import { test } from "node:test";

import { BillingClient, DeadlineExceeded, Unavailable } from "../src/index.js";
import { API_KEY, LOSSY_TARGET } from "./env.js";

test("a lost answer is retried with the same key; a write without one is not", { skip: !LOSSY_TARGET }, async () => {
  const client = new BillingClient({
    target: LOSSY_TARGET,
    credential: API_KEY,
    retry: { attempts: 4, initialBackoffMs: 10 },
  });
  await client.plans.upsert({ key: "ts-retry", name: "Retry", quotas: { seo: 5n } });
  await client.billing.setSubscription({ userId: "ts-retry", planKey: "ts-retry" });
  // The proxy loses the first two answers: the server saw three attempts.
  const consumed = await client.billing.consume({ userId: "ts-retry", primitive: "seo" });
  assert.equal(consumed.standing?.usedDecimal?.value, "1");
  const usage = await client.billing.getUsage({ userId: "ts-retry" });
  assert.equal(usage.usageDecimal.seo?.value, "1");
  const archived = await client.plans.archive({ key: "ts-retry" }).catch((e) => e);
  assert.ok(archived instanceof Unavailable);
});

test("a hung call ends at its deadline", { skip: !LOSSY_TARGET }, async () => {
  // The proxy never answers ListPlans.
  const client = new BillingClient({ target: LOSSY_TARGET, credential: API_KEY });
  const hung = await client.plans.list({}, { timeoutMs: 1000 }).catch((e) => e);
  assert.ok(hung instanceof DeadlineExceeded, String(hung));
});
