// Generates src/gen/ (TypeScript, protobuf-es) from the service's protos/
// and the few googleapis protos they import (google/api, google/rpc,
// google/type, from the google-proto-files npm package): both are copied
// into build/proto, one buf input, so the package builds with no Python
// and no Buf Schema Registry access.
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const protos = process.env.BILLING_PROTOS ?? join(here, "..", "..", "protos");
const require = createRequire(import.meta.url);
const googleapis = dirname(require.resolve("google-proto-files/package.json"));
const GOOGLE = [
  "google/api/annotations.proto",
  "google/api/http.proto",
  "google/api/field_behavior.proto",
  "google/rpc/status.proto",
  "google/rpc/error_details.proto",
  "google/type/decimal.proto",
];

const input = join(here, "build", "proto");
rmSync(input, { recursive: true, force: true });
rmSync(join(here, "src", "gen"), { recursive: true, force: true });
cpSync(join(protos, "billing"), join(input, "billing"), { recursive: true });
for (const file of GOOGLE) {
  mkdirSync(dirname(join(input, file)), { recursive: true });
  cpSync(join(googleapis, file), join(input, file));
}
const buf = join(here, "node_modules", ".bin", "buf");
execFileSync(buf, ["generate", input, "--template", join(here, "buf.gen.yaml")], {
  cwd: here,
  stdio: "inherit",
});
