// The one gRPC-Web transport to Envoy (same origin) and typed clients for the three services.
import { Code, ConnectError, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AuthService } from "../../../gen/ts/exness/auth/v1/auth_pb";
import { MarketDataService } from "../../../gen/ts/exness/market/v1/market_pb";
import { TradingService } from "../../../gen/ts/exness/trading/v1/trading_pb";

export interface Clients {
  auth: Client<typeof AuthService>;
  market: Client<typeof MarketDataService>;
  trading: Client<typeof TradingService>;
}

export interface TokenSource {
  /** The current access token, read on every call so a refreshed one is used at once. */
  accessToken(): string | null;
  /** Renews the tokens; false when the session cannot be renewed. */
  refresh(): Promise<boolean>;
}

const AUTH_PREFIX = `/${AuthService.typeName}/`;

export function createClients(tokens: TokenSource): Clients {
  const bearer: Interceptor = (next) => async (req) => {
    const isAuthCall = req.url.includes(AUTH_PREFIX);
    const token = tokens.accessToken();
    if (token && !isAuthCall) req.header.set("authorization", `Bearer ${token}`);
    try {
      return await next(req);
    } catch (e) {
      // An access token can expire between the scheduled refreshes (laptop asleep): renew once
      // and retry unary calls. Streams are restarted by their own reconnect loop instead.
      const err = ConnectError.from(e);
      if (err.code !== Code.Unauthenticated || isAuthCall || req.stream || !token) throw e;
      if (!(await tokens.refresh())) throw e;
      const fresh = tokens.accessToken();
      if (!fresh) throw e;
      req.header.set("authorization", `Bearer ${fresh}`);
      return await next(req);
    }
  };
  const transport = createGrpcWebTransport({
    baseUrl: window.location.origin,
    useBinaryFormat: true,
    interceptors: [bearer],
  });
  return {
    auth: createClient(AuthService, transport),
    market: createClient(MarketDataService, transport),
    trading: createClient(TradingService, transport),
  };
}
