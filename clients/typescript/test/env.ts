// The server the suite (tests/test_clients_typescript.py) started for these tests.
export const TARGET = process.env.BILLING_TARGET ?? "127.0.0.1:50051";
export const API_KEY = process.env.BILLING_API_KEY ?? "";
/** A proxy that loses the first answers of ConsumeQuota and ArchivePlan. */
export const LOSSY_TARGET = process.env.BILLING_LOSSY_TARGET ?? "";
/** The server's services (full names), comma-separated. */
export const SERVER_SERVICES = (process.env.BILLING_SERVICES ?? "").split(",").filter(Boolean);
