// TypeScript client of the customer billing service (billing.v1 over gRPC, for Node).
export { BillingClient, DEFAULT_RETRY, SERVICES } from "./client.js";
export type { BillingClientOptions, RetryPolicy } from "./client.js";
export * from "./errors.js";
export * from "./gen/billing/v1/account_kit_pb.js";
export * from "./gen/billing/v1/billing_pb.js";
export * from "./gen/billing/v1/meter_pb.js";
export * from "./gen/billing/v1/notification_pb.js";
export * from "./gen/billing/v1/plan_pb.js";
export * from "./gen/billing/v1/project_pb.js";
export * from "./gen/billing/v1/settings_pb.js";
export * from "./gen/billing/v1/stripe_pb.js";
export * from "./gen/billing/v1/subscription_pb.js";
export * from "./gen/billing/v1/usage_pb.js";
export * from "./gen/billing/v1/user_pb.js";
