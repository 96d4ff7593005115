// Logs in, streams quotes and places an order through the edge, once over gRPC-Web and once
// over native gRPC, and prints what happened as one JSON line per transport (the Python test
// suite runs it: tests/edge/test_node_client.py).
//
//   EXNESS_EDGE_URL=http://127.0.0.1:8080 node_modules/.bin/tsx clients/node/src/demo.ts
import { Code, ConnectError } from "@connectrpc/connect";
import { OrderSide, OrderType, OrderStatus } from "../../../gen/ts/exness/trading/v1/trading_pb";
import { connect, type TransportKind } from "./client";
import { failureOf } from "./errors";

const baseUrl = process.env.EXNESS_EDGE_URL ?? "http://127.0.0.1:8080";
const password = "node-client-pass-1";

async function run(kind: TransportKind): Promise<Record<string, unknown>> {
  const exness = connect(baseUrl, kind);
  const email = `node-${kind}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
  await exness.auth.register({ email, password });
  const login = await exness.auth.login({ email, password });
  exness.signIn(login.accessToken);
  const me = await exness.auth.getMe({});

  let refusedWithoutToken = "";
  let refusedWithoutTokenReason = "";
  try {
    await connect(baseUrl, kind).trading.getAccount({});
  } catch (e) {
    refusedWithoutToken = Code[ConnectError.from(e).code];
    refusedWithoutTokenReason = failureOf(e).reason; // made by the edge, not a service
  }
  const refusals: Record<string, { code: string; reason: string; known: boolean; fields: string[] }> = {};
  for (const [name, order] of [
    ["badVolume", { symbol: "BTCUSD", side: OrderSide.BUY, type: OrderType.MARKET, volume: "lots" }],
    ["unknownSymbol", { symbol: "NOPE", side: OrderSide.BUY, type: OrderType.MARKET, volume: "0.01" }],
  ] as const) {
    try {
      await exness.trading.placeOrder(order);
    } catch (e) {
      const failure = failureOf(e);
      refusals[name] = {
        code: Code[failure.code],
        reason: failure.reason,
        known: failure.reasonValue !== undefined,
        fields: failure.fields,
      };
    }
  }

  const quotes: { symbol: string; bid: string; ask: string }[] = [];
  const abort = new AbortController();
  for await (const message of exness.market.streamQuotes(
    { symbols: ["BTCUSD", "ETHUSD"] },
    { signal: abort.signal },
  )) {
    if (message.quote) quotes.push({ symbol: message.quote.symbol, bid: message.quote.bid, ask: message.quote.ask });
    if (quotes.length >= 3) {
      abort.abort();
      break;
    }
  }

  await exness.trading.deposit({ amount: "1000" });
  const placed = await exness.trading.placeOrder({
    symbol: "BTCUSD",
    side: OrderSide.BUY,
    type: OrderType.MARKET,
    volume: "0.01",
    clientOrderId: `node-${kind}-1`,
  });
  const positions = await exness.trading.listPositions({});
  const account = await exness.trading.getAccount({});
  return {
    transport: kind,
    email: me.user?.email,
    refusedWithoutToken,
    refusedWithoutTokenReason,
    refusals,
    quotes,
    orderStatus: OrderStatus[placed.order?.status ?? 0],
    fillPrice: placed.order?.fillPrice,
    positionIds: positions.positions.map((p) => p.positionId),
    openedPosition: placed.position?.positionId,
    margin: account.account?.margin,
  };
}

for (const kind of ["grpc-web", "grpc"] as const) {
  console.log(JSON.stringify(await run(kind)));
}
