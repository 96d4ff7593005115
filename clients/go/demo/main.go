// Command demo is a Go client of the platform built from code generated from proto/ alone
// (protoc-gen-go and protoc-gen-go-grpc; the google/api and google/rpc types come from Go's
// genproto, see docs/contracts.md). Through the Envoy edge it
// reads a quote, streams quotes, registers, deposits, places an order and decodes the
// google.rpc.ErrorInfo of refused calls, then prints what happened as one JSON object.
//
//	demo -edge 127.0.0.1:8080
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	authv1 "exness.dev/contracts/gen/go/exness/auth/v1"
	marketv1 "exness.dev/contracts/gen/go/exness/market/v1"
	tradingv1 "exness.dev/contracts/gen/go/exness/trading/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// Failure is a refused call as a client sees it: the gRPC code, the ErrorInfo reason and the
// fields a BadRequest names.
type Failure struct {
	Code   string   `json:"code"`
	Reason string   `json:"reason"`
	Fields []string `json:"fields"`
}

// failureOf decodes the google.rpc.Status details of a failed call (grpc-status-details-bin)
// into the google.rpc error detail types (Go's genproto, as for any gRPC Go client).
func failureOf(err error) Failure {
	failure := Failure{Code: status.Code(err).String(), Fields: []string{}}
	for _, detail := range status.Convert(err).Details() {
		switch detail := detail.(type) {
		case *errdetails.ErrorInfo:
			failure.Reason = detail.GetReason()
		case *errdetails.BadRequest:
			for _, violation := range detail.GetFieldViolations() {
				failure.Fields = append(failure.Fields, violation.GetField())
			}
		}
	}
	return failure
}

func run(edge string) (map[string]interface{}, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := grpc.DialContext(ctx, edge, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	auth := authv1.NewAuthServiceClient(conn)
	market := marketv1.NewMarketDataServiceClient(conn)
	trading := tradingv1.NewTradingServiceClient(conn)
	result := map[string]interface{}{}

	quote, err := market.GetQuote(ctx, &marketv1.GetQuoteRequest{Symbol: "BTCUSD"})
	if err != nil {
		return nil, fmt.Errorf("GetQuote: %w", err)
	}
	result["quote"] = map[string]string{"symbol": quote.GetQuote().GetSymbol(), "bid": quote.GetQuote().GetBid(), "ask": quote.GetQuote().GetAsk()}

	streamCtx, stopStream := context.WithCancel(ctx)
	stream, err := market.StreamQuotes(streamCtx, &marketv1.StreamQuotesRequest{Symbols: []string{"ETHUSD"}})
	if err != nil {
		stopStream()
		return nil, fmt.Errorf("StreamQuotes: %w", err)
	}
	streamed := []string{}
	for len(streamed) < 3 {
		message, err := stream.Recv()
		if err != nil {
			stopStream()
			return nil, fmt.Errorf("StreamQuotes: %w", err)
		}
		streamed = append(streamed, message.GetQuote().GetSymbol())
	}
	stopStream()
	result["streamed"] = streamed

	_, err = trading.GetAccount(ctx, &tradingv1.GetAccountRequest{})
	result["withoutToken"] = failureOf(err)

	unique := time.Now().UnixNano()
	email := fmt.Sprintf("go-%d@example.com", unique)
	registered, err := auth.Register(ctx, &authv1.RegisterRequest{Email: email, Password: "go-client-pass-1"})
	if err != nil {
		return nil, fmt.Errorf("Register: %w", err)
	}
	result["email"] = registered.GetUser().GetEmail()
	signed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+registered.GetTokens().GetAccessToken())

	if _, err := trading.Deposit(signed, &tradingv1.DepositRequest{Amount: "1000"}); err != nil {
		return nil, fmt.Errorf("Deposit: %w", err)
	}
	placed, err := trading.PlaceOrder(signed, &tradingv1.PlaceOrderRequest{
		Symbol: "BTCUSD", Side: tradingv1.OrderSide_ORDER_SIDE_BUY, Type: tradingv1.OrderType_ORDER_TYPE_MARKET,
		Volume: "0.01", ClientOrderId: fmt.Sprintf("go-%d", unique),
	})
	if err != nil {
		return nil, fmt.Errorf("PlaceOrder: %w", err)
	}
	result["orderStatus"] = placed.GetOrder().GetStatus().String()
	result["positionId"] = placed.GetPosition().GetPositionId()

	_, err = trading.PlaceOrder(signed, &tradingv1.PlaceOrderRequest{
		Symbol: "BTCUSD", Side: tradingv1.OrderSide_ORDER_SIDE_BUY, Type: tradingv1.OrderType_ORDER_TYPE_MARKET,
		Volume: "lots",
	})
	result["badVolume"] = failureOf(err)

	_, err = trading.PlaceOrder(signed, &tradingv1.PlaceOrderRequest{
		Symbol: "BTCUSD", Side: tradingv1.OrderSide_ORDER_SIDE_BUY, Type: tradingv1.OrderType_ORDER_TYPE_MARKET,
		Volume: "50",
	})
	result["noMargin"] = failureOf(err)
	return result, nil
}

func main() {
	edge := flag.String("edge", "127.0.0.1:8080", "host:port of the Envoy edge")
	flag.Parse()
	result, err := run(*edge)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(result); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
