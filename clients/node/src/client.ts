// A typed Node client for the platform, generated from the same .proto files as every other
// client (protoc-gen-es output in gen/ts), over Connect's gRPC (HTTP/2) or gRPC-Web
// (HTTP/1.1) transport, through the Envoy edge.
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { AuthService } from "../../../gen/ts/exness/auth/v1/auth_pb";
import { MarketDataService } from "../../../gen/ts/exness/market/v1/market_pb";
import { TradingService } from "../../../gen/ts/exness/trading/v1/trading_pb";

export type TransportKind = "grpc" | "grpc-web";

export interface Exness {
  auth: Client<typeof AuthService>;
  market: Client<typeof MarketDataService>;
  trading: Client<typeof TradingService>;
  /** Sets the access token sent with every call from now on. */
  signIn(accessToken: string): void;
}

export function connect(baseUrl: string, kind: TransportKind): Exness {
  let token: string | null = null;
  const bearer: Interceptor = (next) => async (req) => {
    if (token) req.header.set("authorization", `Bearer ${token}`);
    return await next(req);
  };
  const transport: Transport =
    kind === "grpc"
      ? createGrpcTransport({ baseUrl, interceptors: [bearer] })
      : createGrpcWebTransport({ baseUrl, httpVersion: "1.1", interceptors: [bearer] });
  return {
    auth: createClient(AuthService, transport),
    market: createClient(MarketDataService, transport),
    trading: createClient(TradingService, transport),
    signIn(accessToken: string) {
      token = accessToken;
    },
  };
}
