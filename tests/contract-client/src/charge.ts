// One real charge through a client generated from the backend's OpenAPI document: the types in
// `api.d.ts` come from `openapi-typescript`, so this file only compiles while the document
// describes the charge route, its body and its answer the way this code uses them.
//
// Usage: node dist/charge.js BASE_URL KIOSK_TOKEN STAFF_ID KEY
import createClient from "openapi-fetch";
import type { paths } from "./api.js";

async function main(): Promise<number> {
  const [baseUrl, token, staff, key] = process.argv.slice(2);
  if (!baseUrl || !token || !staff || !key) {
    console.error("usage: charge.js BASE_URL KIOSK_TOKEN STAFF_ID KEY");
    return 2;
  }
  const client = createClient<paths>({ baseUrl });
  const { data, error, response } = await client.POST("/api/v1/kiosk/charges", {
    headers: { Authorization: `Bearer ${token}` },
    body: {
      idempotency_key: key,
      staff_id: Number(staff),
      kiosk_time: new Date().toISOString(),
      offline: false,
    },
  });
  if (error !== undefined) {
    // The error body is typed too: every error status documents `ErrorBody`.
    console.error(`HTTP ${response.status}: ${error.error.code}: ${error.error.message}`);
    return 1;
  }
  const status: "accepted" | "declined" | "exception" = data.status;
  console.log(JSON.stringify({ status, charge_id: data.charge_id, amount: data.amount, cash_balance: data.cash_balance }));
  return status === "accepted" ? 0 : 1;
}

main().then((code) => process.exit(code));
