import assert from "node:assert/strict";
import { test } from "node:test";

import { ConnectError } from "@connectrpc/connect";

import {
  BillingClient,
  BillingError,
  InvalidArgument,
  NotFound,
  Period,
  QuotaExceeded,
  SERVICES,
  Unauthenticated,
} from "../src/index.js";
import { API_KEY, SERVER_SERVICES, TARGET } from "./env.js";

const client = new BillingClient({ target: TARGET, credential: API_KEY });

test("the seed's shape consumes until QuotaExceeded, with used, limit and resetsAt", async () => {
  await client.plans.upsert({ key: "ts-starter", name: "TS", quotas: { seo: 2n }, period: Period.MONTH });
  await client.billing.setSubscription({ userId: "ts-user", planKey: "ts-starter" });
  const first = await client.billing.consume({ userId: "ts-user", primitive: "seo" });
  const second = await client.usage.consumeQuota({ userId: "ts-user", primitive: "seo" });
  assert.deepEqual([first.standing?.usedDecimal?.value, second.standing?.usedDecimal?.value], ["1", "2"]);
  const refused = await client.billing.consume({ userId: "ts-user", primitive: "seo" }).catch((e) => e);
  assert.ok(refused instanceof QuotaExceeded);
  assert.ok(refused instanceof BillingError && refused instanceof ConnectError);
  assert.equal(refused.reason, "RATE_LIMITED");
  assert.equal(refused.domain, "billing.v1");
  assert.equal(refused.rawMessage, "Plan quota exceeded for 'seo' (2/2 this period)");
  assert.deepEqual([refused.primitive, refused.used, refused.limit], ["seo", "2", "2"]);
  assert.equal(refused.resetsAt?.toISOString(), "2026-07-01T00:00:00.000Z");
  const usage = await client.billing.getUsage({ userId: "ts-user" });
  assert.equal(usage.plan, "ts-starter");
  assert.equal(usage.usageDecimal.seo?.value, "2");
});

test("refusals are typed errors with the ErrorInfo's reason", async () => {
  const missing = await client.plans.get({ key: "nope" }).catch((e) => e);
  assert.ok(missing instanceof NotFound);
  assert.equal(missing.reason, "NOT_FOUND");
  const invalid = await client.billing.consume({ userId: "", primitive: "seo" }).catch((e) => e);
  assert.ok(invalid instanceof InvalidArgument && !(invalid instanceof NotFound));
  assert.equal(invalid.reason, "INVALID_ARGUMENT");
  const stranger = new BillingClient({ target: TARGET, credential: "bsk_wrong" });
  assert.ok((await stranger.plans.list({}).catch((e) => e)) instanceof Unauthenticated);
});

test("settings with an end user's session token", async () => {
  await client.users.createUser({ email: "ts@example.com", password: "correct horse battery" });
  const signed = await client.users.signIn({ email: "ts@example.com", password: "correct horse battery" });
  const user = client.withCredential(signed.sessionToken);
  await user.settings.updateNotifications({ push: false });
  const { preferences } = await user.settings.getPreferences();
  assert.equal(preferences?.notifications?.push, false);
  assert.equal(preferences?.notifications?.email, true);
  assert.ok((await client.settings.getPreferences().catch((e) => e)) instanceof Unauthenticated);
});

test("every RPC of every service is a method of a namespace", () => {
  const known = new Set(SERVICES.map((service) => service.typeName));
  for (const name of SERVER_SERVICES) assert.ok(known.has(name), `${name} is not in SERVICES`);
  const namespaces = Object.values(client as unknown as Record<string, Record<string, unknown>>);
  for (const service of SERVICES) {
    for (const method of service.methods) {
      const found = namespaces.some((ns) => typeof ns?.[method.localName] === "function");
      assert.equal(typeof client.service(service)[method.localName as never], "function");
      assert.ok(found, `${service.typeName}.${method.name} has no method`);
    }
  }
});

test("a client for one user names it in every call that names none", async () => {
  await client.plans.upsert({ key: "ts-owner", name: "Owner", quotas: { seo: 5n } });
  const tenant = client.forUser("ts-user-7");
  await tenant.billing.setSubscription({ planKey: "ts-owner" });
  await tenant.billing.consume({ primitive: "seo" });
  await tenant.billing.consume({ primitive: "seo", userId: "ts-user-8" }); // given: kept
  const mine = await tenant.billing.usage();
  assert.equal(mine.plan, "ts-owner");
  assert.equal(mine.usageDecimal.seo?.value, "1");
  const organization = client.forOrganization("ts-user-7");
  assert.ok((await organization.billing.getSubscription().catch((e) => e)) instanceof NotFound);
});
