// BillingClient: one gRPC transport (@connectrpc/connect-node), one bearer
// credential, a namespace per area (`client.billing.consume({...})`).
//
// A call takes the request's fields and CallOptions; `timeoutMs` bounds the
// whole call, retries included. A call answered UNAVAILABLE is retried, with
// backoff, when repeating it cannot count twice: a request with an
// idempotency key (one is generated when the caller gives none, and every
// attempt sends the same), or a read or upsert.
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";

import {
  create,
  type DescMethod,
  type DescMethodUnary,
  type DescService,
  type MessageInitShape,
  type MessageShape,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createClient,
  type CallOptions,
  type Transport,
} from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { toBillingError } from "./errors.js";
import { AccountKitService } from "./gen/billing/v1/account_kit_pb.js";
import { BillingService } from "./gen/billing/v1/billing_pb.js";
import { MeterService } from "./gen/billing/v1/meter_pb.js";
import { NotificationService, UsageAlertService } from "./gen/billing/v1/notification_pb.js";
import { PlanService } from "./gen/billing/v1/plan_pb.js";
import { ProjectService } from "./gen/billing/v1/project_pb.js";
import { SettingsService } from "./gen/billing/v1/settings_pb.js";
import { StripeService, StripeWebhookService } from "./gen/billing/v1/stripe_pb.js";
import { SubscriptionService } from "./gen/billing/v1/subscription_pb.js";
import { UsageService } from "./gen/billing/v1/usage_pb.js";
import { UserService } from "./gen/billing/v1/user_pb.js";
import { ALL_SERVICES } from "./gen/billing/v1/services.js";

/** Every billing.v1 service the client reaches. */
export const SERVICES: readonly DescService[] = ALL_SERVICES;

/** A service's unary methods; a request with no required field may be left out. */
export type Methods<S extends DescService> = {
  [K in keyof S["method"]]: S["method"][K] extends DescMethodUnary<infer I, infer O>
    ? (request?: MessageInitShape<I>, options?: CallOptions) => Promise<MessageShape<O>>
    : never;
};

export interface RetryPolicy {
  /** Attempts in all (1: no retry). */
  attempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  multiplier: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 4, initialBackoffMs: 100, maxBackoffMs: 2000, multiplier: 2,
};

export interface BillingClientOptions {
  /** host:port of the gRPC server, or a base URL (http://host:port). */
  target: string;
  /** An operator's API key, or an end user's session token (for `settings`). */
  credential?: string;
  /** Each call's deadline unless its options give one; default 10 s. */
  timeoutMs?: number;
  retry?: Partial<RetryPolicy>;
  /** A transport of your own (TLS, interceptors); `target` is then unused. */
  transport?: Transport;
  /** The owner a call names when its request names an owner and gives none (forUser). */
  owner?: { userId?: string; organizationId?: string };
}

const OWNER_FIELDS = ["tenantId", "userId", "organizationId"];

// Methods that change nothing, or whose repetition changes nothing more.
const SAFE_PREFIXES = ["get", "list", "check", "can", "upsert", "set"];

function isKeyed(method: DescMethod): boolean {
  return method.input.fields.some((field) => field.localName === "idempotencyKey");
}

function isRetriable(method: DescMethod): boolean {
  return isKeyed(method) || SAFE_PREFIXES.some((prefix) => method.localName.startsWith(prefix));
}

class Core {
  constructor(
    readonly transport: Transport,
    readonly credential: string | undefined,
    readonly timeoutMs: number,
    readonly retry: RetryPolicy,
    readonly owner: Record<string, string | undefined>,
  ) {}

  bind<S extends DescService>(service: S): Methods<S> {
    const raw = createClient(service, this.transport) as unknown as Record<
      string, (request: unknown, options?: CallOptions) => Promise<unknown>
    >;
    const methods: Record<string, unknown> = {};
    for (const method of service.methods) {
      if (method.methodKind !== "unary") continue;
      methods[method.localName] = (request?: object, options?: CallOptions) =>
        this.call(method, raw[method.localName], request ?? {}, options ?? {});
    }
    return methods as Methods<S>;
  }

  private async call(
    method: DescMethod,
    send: (request: unknown, options?: CallOptions) => Promise<unknown>,
    request: object,
    options: CallOptions,
  ): Promise<unknown> {
    const message = create(method.input, request as never) as Record<string, unknown>;
    if (isKeyed(method) && !message.idempotencyKey) message.idempotencyKey = randomUUID();
    const named = new Set(method.input.fields.map((field) => field.localName));
    if (!OWNER_FIELDS.some((name) => named.has(name) && message[name])) {
      for (const [name, value] of Object.entries(this.owner)) {
        if (value && named.has(name)) message[name] = value;
      }
    }
    const headers = new Headers(options.headers);
    if (this.credential && !headers.has("authorization")) {
      headers.set("authorization", `Bearer ${this.credential}`);
    }
    const deadline = Date.now() + (options.timeoutMs ?? this.timeoutMs);
    const attempts = isRetriable(method) ? this.retry.attempts : 1;
    for (let attempt = 0; ; attempt++) {
      try {
        const timeoutMs = Math.max(deadline - Date.now(), 1);
        return await send(message, { ...options, headers, timeoutMs });
      } catch (reason) {
        const error = ConnectError.from(reason);
        const last = attempt + 1 >= attempts || Date.now() >= deadline;
        if (error.code !== Code.Unavailable || last) throw toBillingError(error);
      }
      const ceiling = Math.min(
        this.retry.maxBackoffMs, this.retry.initialBackoffMs * this.retry.multiplier ** attempt,
      );
      await sleep(Math.min(Math.random() * ceiling, Math.max(deadline - Date.now(), 0)));
    }
  }
}

function namespaces(core: Core) {
  const usage = core.bind(UsageService);
  const subscriptions = core.bind(SubscriptionService);
  const plans = core.bind(PlanService);
  const kits = core.bind(AccountKitService);
  const meters = core.bind(MeterService);
  const projects = core.bind(ProjectService);
  const stripe = core.bind(StripeService);
  const bills = core.bind(BillingService);
  return {
    /** Usage, subscriptions, bills and Stripe: the seed's r.billing. */
    billing: {
      ...usage, ...subscriptions, ...bills, ...stripe,
      check: usage.checkQuota,
      consume: usage.consumeQuota,
      record: usage.recordUsage,
      refund: usage.refundUsage,
      usage: usage.getUsage,
      get: stripe.getBilling,
      getStatus: stripe.getBillingStatus,
      getPeriods: bills.getBillingPeriods,
    },
    usage: {
      ...usage,
      check: usage.checkQuota, consume: usage.consumeQuota, record: usage.recordUsage,
      refund: usage.refundUsage, get: usage.getUsage,
    },
    plans: {
      ...plans,
      upsert: plans.upsertPlan, get: plans.getPlan, list: plans.listPlans,
      archive: plans.archivePlan,
    },
    kits: {
      ...kits,
      upsert: kits.upsertAccountKit, get: kits.getAccountKit, list: kits.listAccountKits,
    },
    meters: { ...meters, upsert: meters.upsertMeter, get: meters.getMeter, list: meters.listMeters },
    projects: {
      ...projects,
      upsert: projects.upsertProject, get: projects.getProject, list: projects.listProjects,
    },
    subscriptions: {
      ...subscriptions,
      set: subscriptions.setSubscription, get: subscriptions.getSubscription,
      list: subscriptions.listSubscriptions,
    },
    stripe,
    stripeWebhooks: core.bind(StripeWebhookService),
    users: core.bind(UserService),
    settings: core.bind(SettingsService),
    notifications: core.bind(NotificationService),
    alerts: core.bind(UsageAlertService),
  };
}

type Namespaces = ReturnType<typeof namespaces>;

export interface BillingClient extends Namespaces {}

// The services the namespaces above name; any other (a newer proto) gets a
// namespace named after it (AdminService: client.admin), typed through service().
const NAMED = new Set([
  AccountKitService, BillingService, MeterService, NotificationService, UsageAlertService,
  PlanService, ProjectService, SettingsService, StripeService, StripeWebhookService,
  SubscriptionService, UsageService, UserService,
].map((service) => service.typeName));

function namespaceName(service: DescService): string {
  const name = service.name.replace(/Service$/, "");
  return name.charAt(0).toLowerCase() + name.slice(1);
}

export class BillingClient {
  readonly transport: Transport;
  private readonly options: BillingClientOptions;
  private readonly core: Core;

  constructor(options: BillingClientOptions) {
    this.options = options;
    const baseUrl = options.target.includes("://") ? options.target : `http://${options.target}`;
    this.transport = options.transport ?? createGrpcTransport({ baseUrl });
    const core = (this.core = new Core(
      this.transport,
      options.credential,
      options.timeoutMs ?? 10_000,
      { ...DEFAULT_RETRY, ...options.retry },
      { ...options.owner },
    ));
    Object.assign(this, namespaces(core));
    for (const service of SERVICES) {
      if (!NAMED.has(service.typeName)) Object.assign(this, { [namespaceName(service)]: core.bind(service) });
    }
  }

  /** Any billing.v1 service's methods, typed: `client.service(UsageService).consumeQuota(...)`. */
  service<S extends DescService>(service: S): Methods<S> {
    return this.core.bind(service);
  }

  /** A client over the same transport, sending another credential (an end user's session token). */
  withCredential(credential: string): BillingClient {
    return new BillingClient({ ...this.options, transport: this.transport, credential });
  }

  /** This client for one end user (the seed's forUser): a call whose request names an owner, and gives none, names this user. */
  forUser(userId: string): BillingClient {
    return new BillingClient({ ...this.options, transport: this.transport, owner: { userId } });
  }

  /** This client for one organization, as forUser. */
  forOrganization(organizationId: string): BillingClient {
    return new BillingClient({
      ...this.options, transport: this.transport, owner: { organizationId },
    });
  }
}
