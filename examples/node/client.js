// A Node client of the billing service (@grpc/grpc-js + @grpc/proto-loader):
// creates a plan with a small quota, subscribes a tenant to it, and consumes
// until the service answers RESOURCE_EXHAUSTED, whose google.rpc.ErrorInfo it
// reads from the status details. Prints one JSON object per line.
//
//   BILLING_TARGET=127.0.0.1:50051 BILLING_API_KEY=bsk_... \
//   BILLING_PROTO_PATH=../../protos:../../build/third_party/protos node client.js
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');

const target = process.env.BILLING_TARGET || '127.0.0.1:50051';
const apiKey = process.env.BILLING_API_KEY;
const includeDirs = (process.env.BILLING_PROTO_PATH || '../../protos').split(':');
const tenant = process.env.BILLING_TENANT || 'node-tenant';
const QUOTA = 3;

const definition = protoLoader.loadSync(
  [
    'billing/v1/plan.proto',
    'billing/v1/subscription.proto',
    'billing/v1/usage.proto',
  ],
  {includeDirs, keepCase: true, longs: String, enums: String, defaults: true},
);
const billing = grpc.loadPackageDefinition(definition).billing.v1;

function call(client, method, request) {
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${apiKey}`);
  return new Promise((resolve, reject) => {
    client[method](request, metadata, (error, response) => (error ? reject(error) : resolve(response)));
  });
}

// The google.rpc.Status the service sends in the `grpc-status-details-bin`
// trailer, decoded with protobufjs (what proto-loader is built on): its
// ErrorInfo, if any.
function decodeErrorInfo(raw) {
  const root = new protobuf.Root();
  root.resolvePath = (origin, file) => {
    const found = includeDirs.map((dir) => path.join(dir, file)).find((p) => fs.existsSync(p));
    return found || file;
  };
  root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], {keepCase: true});
  const status = root.lookupType('google.rpc.Status').decode(raw);
  const ErrorInfo = root.lookupType('google.rpc.ErrorInfo');
  const detail = status.details.find((d) => d.type_url.endsWith('/google.rpc.ErrorInfo'));
  return detail ? ErrorInfo.toObject(ErrorInfo.decode(detail.value)) : null;
}

async function main() {
  if (!apiKey) throw new Error('set BILLING_API_KEY to an operator API key');
  const credentials = grpc.credentials.createInsecure();
  const plans = new billing.PlanService(target, credentials);
  const subscriptions = new billing.SubscriptionService(target, credentials);
  const usage = new billing.UsageService(target, credentials);

  const plan = await call(plans, 'UpsertPlan', {
    key: 'node-demo', name: 'Node demo', quotas: {seo: QUOTA}, period: 'PERIOD_MONTH',
  });
  console.log(JSON.stringify({step: 'plan', key: plan.plan.key, created: plan.created}));
  await call(subscriptions, 'SetSubscription', {user_id: tenant, plan_key: 'node-demo'});
  console.log(JSON.stringify({step: 'subscription', tenant}));

  for (let i = 1; i <= QUOTA + 1; i++) {
    try {
      const consumed = await call(usage, 'ConsumeQuota', {user_id: tenant, primitive: 'seo'});
      // used_decimal: the exact figure (the int64 `used` is its deprecated whole-unit twin).
      const used = consumed.standing.used_decimal.value;
      console.log(JSON.stringify({step: 'consume', call: i, used}));
    } catch (error) {
      if (error.code !== grpc.status.RESOURCE_EXHAUSTED) throw error;
      const [details] = error.metadata.get('grpc-status-details-bin');
      const info = details ? decodeErrorInfo(details) : null;
      console.log(JSON.stringify({
        step: 'exhausted', call: i, code: 'RESOURCE_EXHAUSTED', message: error.details,
        reason: info && info.reason, metadata: info && info.metadata,
      }));
      return;
    }
  }
  throw new Error('the quota was never exhausted');
}

main().catch((error) => {
  console.error(error.message || error);
  process.exit(1);
});
