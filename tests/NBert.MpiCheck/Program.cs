using System.Globalization;
using NBert.Distributed;

// Usage: NBert.MpiCheck MODE. Each rank prints "rank R/N: ..." lines (round-trip formatted) that the test compares.
string mode = args.Length > 0 ? args[0] : "info";
using var world = MpiWorld.Start();
string R(double v) => v.ToString("R", CultureInfo.InvariantCulture);
void Say(string what) => Console.WriteLine($"rank {world.Rank}/{world.Size}: {what}");
try
{
    switch (mode)
    {
        case "info":
            Say($"mpi={world.IsMpi}");
            break;
        case "allreduce-float":
        {
            // Rank r contributes r + i * 0.25 at i: every rank must end with sum_r (r + i * 0.25).
            var values = Enumerable.Range(0, 1000).Select(i => world.Rank + i * 0.25f).ToArray();
            world.AllreduceSum(values);
            Say(string.Join(",", values.Take(4).Append(values[^1]).Select(v => R(v))));
            break;
        }
        case "allreduce-double":
        {
            var values = Enumerable.Range(0, 1000).Select(i => world.Rank * 1e-9 + i).ToArray();
            world.AllreduceSum(values);
            Say(string.Join(",", values.Take(4).Append(values[^1]).Select(R)));
            break;
        }
        case "bcast":
        {
            // Every rank starts with its own values; all must end with rank 1's (the last rank's when there is one).
            int root = world.Size - 1;
            var floats = new[] { world.Rank + 0.5f, -world.Rank };
            var doubles = new[] { world.Rank + 0.125, Math.PI * world.Rank };
            var bytes = new[] { (byte)(world.Rank + 1), (byte)(world.Rank + 2) };
            world.Broadcast(floats, root);
            world.Broadcast(doubles, root);
            world.Broadcast(bytes, root);
            Say($"{R(floats[0])},{R(floats[1])};{R(doubles[0])},{R(doubles[1])};{bytes[0]},{bytes[1]}");
            break;
        }
        case "barrier":
        {
            // Rank 0 sleeps before the barrier: no rank may leave it before rank 0 entered it.
            if (world.Rank == 0) Thread.Sleep(1000);
            long entered = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            world.Barrier();
            long left = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
            var times = new double[world.Size * 2];
            times[world.Rank * 2] = entered;
            times[world.Rank * 2 + 1] = left;
            world.AllreduceSum(times);
            double lastEntered = Enumerable.Range(0, world.Size).Max(r => times[r * 2]);
            double firstLeft = Enumerable.Range(0, world.Size).Min(r => times[r * 2 + 1]);
            Say($"left-after-all-entered={firstLeft >= lastEntered}");
            break;
        }
        case "throw":
            // Rank 1 fails; the others block in a collective that rank 1 never joins: only MPI_Abort ends them.
            if (world.Rank == 1) throw new InvalidOperationException("rank 1 failed on purpose");
            world.AllreduceSum(new float[16]);
            Say("allreduce returned (it must not)");
            break;
        case "train-fail":
        {
            // A data-parallel Trainer whose batch function throws on rank 1 at its third micro-batch (number 5): rank 0 is then
            // waiting in the gradient allreduce, and the trainer's MpiDataParallel.Fail must end both.
            var config = new NBert.Schema.BertConfig
            {
                VocabSize = 30, HiddenSize = 8, NumHiddenLayers = 1, NumAttentionHeads = 2, IntermediateSize = 12, MaxPositionEmbeddings = 8, Id2Label = ["a", "b"],
            };
            var model = NBert.Modeling.BertPreTrainedModel.FromConfig(config, NBert.Schema.BertArchitecture.BertForSequenceClassification, seed: 1);
            var data = Enumerable.Range(0, 32).Select(i => new NBert.Tasks.Feature { InputIds = [1, 5 + i % 7, 2], TokenTypeIds = [0, 0, 0], Label = i % 2, Example = i }).ToList();
            var trainer = new NBert.Training.Trainer(model, null, data.Count, (indices, microBatch) =>
                world.Rank == 1 && microBatch >= 4 ? throw new InvalidOperationException($"rank 1 failed on purpose at micro-batch {microBatch}")
                    : NBert.Tasks.Feature.Collate(indices.Select(i => data[i]).ToList(), 0),
                null, new NBert.Training.TrainerOptions { BatchSize = 4, Epochs = 1, DataParallel = new MpiDataParallel(world) });
            trainer.Train();
            Say("training finished (it must not)");
            break;
        }
        case "train64":
            // train64 pretraining|classification MODEL_DIR OUT_FILE ACCUMULATION: 5 float64 steps, dropout off; rank 0 writes the weights.
            Float64Training.Run(world, args[1], args[2], args[3], int.Parse(args[4], CultureInfo.InvariantCulture), Say);
            break;
        default:
            throw new ArgumentException($"unknown mode {mode}");
    }
}
catch (Exception e)
{
    Console.Error.WriteLine($"rank {world.Rank}: {e.GetType().Name}: {e.Message}");
    world.Abort(3);
}
