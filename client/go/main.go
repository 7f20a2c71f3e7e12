// mpcd from Go with nothing but proto/mpcd/v1/mpcd.proto: checks health, lists the models, solves a
// pendulum swing-up and shows that a malformed request is refused with INVALID_ARGUMENT and a
// google.rpc.BadRequest naming the field.
//
// Generate the stubs (protoc-gen-go, protoc-gen-go-grpc; mpcd.proto's go_package places them) into
// a GOPATH, copy this folder next to them and build offline against Debian's Go packages
// (golang-google-grpc-dev, golang-google-protobuf-dev, in /usr/share/gocode):
//
//	export GOPATH=$PWD/build/gopath GO111MODULE=off GOPROXY=off
//	mkdir -p $GOPATH/src && cp -r client/go $GOPATH/src/mpcdclient
//	protoc -I proto --go_out=$GOPATH/src --go-grpc_out=$GOPATH/src mpcd/v1/mpcd.proto
//	GOPATH=$GOPATH:/usr/share/gocode go build -o build/mpcd-go mpcdclient
//	build/mpcd-go --target=localhost:50051 [--check]
//
// --check turns the printout into assertions (exit 1 on any failure): the GoClient test runs it so.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	mpcdv1 "mpcd/gen/go/mpcd/v1"
)

var (
	target = flag.String("target", "localhost:50051", "mpcd's address")
	check  = flag.Bool("check", false, "assert the results (exit 1 on any failure)")
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "go client: "+format+"\n", args...)
	os.Exit(1)
}

func tensor(shape []uint32, data []float64) *mpcdv1.Tensor {
	return &mpcdv1.Tensor{Shape: shape, Data: data}
}

func diag(values ...float64) *mpcdv1.Tensor {
	n := len(values)
	data := make([]float64, n*n)
	for i, v := range values {
		data[i*n+i] = v
	}
	return tensor([]uint32{uint32(n), uint32(n)}, data)
}

// The pendulum from 0.3 rad off hanging down, pulled towards upright (state cos, sin, dtheta).
func pendulum(xInit []float64) *mpcdv1.Problem {
	return &mpcdv1.Problem{
		XInit: tensor([]uint32{uint32(len(xInit))}, xInit),
		Cost: &mpcdv1.QuadraticCost{
			Quadratic: diag(1, 1, 0.1, 0.001),
			Linear:    tensor([]uint32{4}, []float64{-1, 0, 0, 0}),
		},
		Dynamics: &mpcdv1.Dynamics{Kind: &mpcdv1.Dynamics_Model{
			Model: &mpcdv1.ModelDynamics{Name: "pendulum"}}},
		ULower: tensor([]uint32{1}, []float64{-2}),
		UUpper: tensor([]uint32{1}, []float64{2}),
	}
}

func main() {
	flag.Parse()
	connection, err := grpc.Dial(*target, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithTimeout(30*time.Second))
	if err != nil {
		fail("cannot connect to %s: %v", *target, err)
	}
	defer connection.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	health, err := healthpb.NewHealthClient(connection).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		fail("health: %v", err)
	}
	fmt.Println("health:", health.GetStatus())

	client := mpcdv1.NewMpcServiceClient(connection)
	models, err := client.ListModels(ctx, &mpcdv1.ListModelsRequest{})
	if err != nil {
		fail("ListModels: %v", err)
	}
	names := []string{}
	for _, model := range models.GetModels() {
		names = append(names, model.GetName())
	}
	fmt.Println("models:", names)

	const horizon = 20
	hanging := math.Pi - 0.3
	answer, err := client.Solve(ctx, &mpcdv1.SolveRequest{
		Horizon:  horizon,
		Problems: []*mpcdv1.Problem{pendulum([]float64{math.Cos(hanging), math.Sin(hanging), 0})},
		Options:  &mpcdv1.SolverOptions{MaxIterations: proto.Uint32(100)},
	})
	if err != nil {
		fail("Solve: %v", err)
	}
	solution := answer.GetSolutions()[0]
	fmt.Printf("solve: %v after %d iterations, cost %.4f, x shape %v\n", solution.GetStatus(),
		solution.GetIterations(), solution.GetCost(), solution.GetX().GetShape())

	// x_init of the wrong length: refused, and the error's details name the field.
	_, refused := client.Solve(ctx, &mpcdv1.SolveRequest{
		Horizon: horizon, Problems: []*mpcdv1.Problem{pendulum([]float64{1, 0})}})
	refusal := status.Convert(refused)
	violations := []string{}
	for _, detail := range refusal.Details() {
		if badRequest, ok := detail.(*errdetails.BadRequest); ok {
			for _, violation := range badRequest.GetFieldViolations() {
				violations = append(violations, violation.GetField())
			}
		}
	}
	fmt.Printf("bad request: %v: %s (violations %v)\n", refusal.Code(), refusal.Message(), violations)

	if *check {
		if health.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			fail("health is %v", health.GetStatus())
		}
		if len(names) == 0 {
			fail("no models")
		}
		if solution.GetStatus() != mpcdv1.SolveStatus_CONVERGED {
			fail("the swing-up did not converge: %v", solution.GetStatus())
		}
		if shape := solution.GetX().GetShape(); len(shape) != 2 || shape[0] != horizon || shape[1] != 3 {
			fail("x has shape %v, not (%d, 3)", shape, horizon)
		}
		if refusal.Code() != codes.InvalidArgument || len(violations) != 1 ||
			violations[0] != "problems[0].x_init" {
			fail("the bad request was answered %v %v", refusal.Code(), violations)
		}
		fmt.Println("go client: all checks passed")
	}
}
