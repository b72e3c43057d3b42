namespace NBert.Float64Reference;

/// <summary>
/// transformers' <c>BertModel</c> forward in float64, written as plain loops over doubles so that it shares nothing
/// with NBert's float32 engine (no SGEMM, no vectorised kernels): embeddings (word + position + token type, LayerNorm),
/// each encoder layer (self-attention with scores / √d plus an additive mask of (1 - mask) × the float64 minimum,
/// softmax, output dense, residual LayerNorm, intermediate dense with exact-erf GELU, output dense, residual LayerNorm),
/// and the pooler (tanh(dense([CLS]))) when there is one. What transformers computes with
/// <c>model.double()</c> on the same weights.
/// </summary>
public sealed class Float64Bert
{
    private readonly Dictionary<string, double[]> _w;
    private readonly int _hidden, _heads, _layers, _intermediate;
    private readonly double _eps;

    /// <param name="parameters">float32 parameters by transformers name ([out, in] linear weights), widened to double.</param>
    public Float64Bert(IReadOnlyDictionary<string, (float[] Values, int[] Shape)> parameters, int heads, int layers, double layerNormEps)
    {
        _w = parameters.ToDictionary(p => p.Key, p => p.Value.Values.Select(v => (double)v).ToArray());
        _hidden = parameters["embeddings.word_embeddings.weight"].Shape[1];
        _intermediate = parameters["encoder.layer.0.intermediate.dense.bias"].Shape[0];
        _heads = heads;
        _layers = layers;
        _eps = layerNormEps;
    }

    /// <summary>Whether the weights include a pooler.</summary>
    public bool HasPooler => _w.ContainsKey("pooler.dense.weight");

    /// <summary>last_hidden_state [batch·sequence·hidden] and pooler_output [batch·hidden] (null without a pooler).</summary>
    public (double[] LastHiddenState, double[]? PoolerOutput) Forward(int batch, int sequence, long[] inputIds, long[] tokenTypeIds, long[] attentionMask)
    {
        int h = _hidden, m = batch * sequence;
        var x = new double[m * h];
        for (int t = 0; t < m; t++)
            for (int j = 0; j < h; j++)
                x[t * h + j] = _w["embeddings.word_embeddings.weight"][inputIds[t] * h + j]
                    + _w["embeddings.position_embeddings.weight"][t % sequence * h + j]
                    + _w["embeddings.token_type_embeddings.weight"][tokenTypeIds[t] * h + j];
        LayerNorm(x, m, "embeddings.LayerNorm");
        for (int l = 0; l < _layers; l++)
        {
            string p = $"encoder.layer.{l}";
            var q = Linear(x, m, h, h, $"{p}.attention.self.query");
            var k = Linear(x, m, h, h, $"{p}.attention.self.key");
            var v = Linear(x, m, h, h, $"{p}.attention.self.value");
            var context = Attention(q, k, v, batch, sequence, attentionMask);
            var attended = Linear(context, m, h, h, $"{p}.attention.output.dense");
            for (int i = 0; i < attended.Length; i++) attended[i] += x[i];
            LayerNorm(attended, m, $"{p}.attention.output.LayerNorm");
            var inner = Linear(attended, m, h, _intermediate, $"{p}.intermediate.dense");
            for (int i = 0; i < inner.Length; i++) inner[i] = 0.5 * inner[i] * (1 + Erf(inner[i] / Math.Sqrt(2)));
            x = Linear(inner, m, _intermediate, h, $"{p}.output.dense");
            for (int i = 0; i < x.Length; i++) x[i] += attended[i];
            LayerNorm(x, m, $"{p}.output.LayerNorm");
        }
        if (!HasPooler) return (x, null);
        var first = new double[batch * h];
        for (int b = 0; b < batch; b++) Array.Copy(x, b * sequence * h, first, b * h, h);
        var pooled = Linear(first, batch, h, h, "pooler.dense");
        for (int i = 0; i < pooled.Length; i++) pooled[i] = Math.Tanh(pooled[i]);
        return (x, pooled);
    }

    /// <summary>y[rows, out] = x[rows, in] · Wᵀ + b, each output a plain sum in index order.</summary>
    private double[] Linear(double[] x, int rows, int inputs, int outputs, string name)
    {
        double[] w = _w[name + ".weight"], bias = _w[name + ".bias"];
        var y = new double[rows * outputs];
        Parallel.For(0, rows, r =>
        {
            for (int o = 0; o < outputs; o++)
            {
                double sum = 0;
                for (int i = 0; i < inputs; i++) sum += x[r * inputs + i] * w[o * inputs + i];
                y[r * outputs + o] = sum + bias[o];
            }
        });
        return y;
    }

    private void LayerNorm(double[] x, int rows, string name)
    {
        double[] weight = _w[name + ".weight"], bias = _w[name + ".bias"];
        int h = _hidden;
        for (int r = 0; r < rows; r++)
        {
            double mean = 0, variance = 0;
            for (int j = 0; j < h; j++) mean += x[r * h + j];
            mean /= h;
            for (int j = 0; j < h; j++) variance += (x[r * h + j] - mean) * (x[r * h + j] - mean);
            variance /= h;
            double inv = 1 / Math.Sqrt(variance + _eps);
            for (int j = 0; j < h; j++) x[r * h + j] = (x[r * h + j] - mean) * inv * weight[j] + bias[j];
        }
    }

    /// <summary>softmax(Q Kᵀ / √d + (1 - mask) × double.MinValue) V for every sequence and head.</summary>
    private double[] Attention(double[] q, double[] k, double[] v, int batch, int sequence, long[] mask)
    {
        int h = _hidden, d = h / _heads;
        var context = new double[batch * sequence * h];
        double scale = Math.Sqrt(d);
        Parallel.For(0, batch * _heads, job =>
        {
            int b = job / _heads, head = job % _heads;
            var scores = new double[sequence];
            for (int i = 0; i < sequence; i++)
            {
                int qi = (b * sequence + i) * h + head * d;
                double max = double.NegativeInfinity;
                for (int j = 0; j < sequence; j++)
                {
                    int kj = (b * sequence + j) * h + head * d;
                    double dot = 0;
                    for (int e = 0; e < d; e++) dot += q[qi + e] * k[kj + e];
                    scores[j] = dot / scale + (1 - mask[b * sequence + j]) * double.MinValue;
                    max = Math.Max(max, scores[j]);
                }
                double total = 0;
                for (int j = 0; j < sequence; j++) total += scores[j] = Math.Exp(scores[j] - max);
                for (int e = 0; e < d; e++)
                {
                    double sum = 0;
                    for (int j = 0; j < sequence; j++) sum += scores[j] / total * v[(b * sequence + j) * h + head * d + e];
                    context[qi + e] = sum;
                }
            }
        });
        return context;
    }

    /// <summary>
    /// erf in double, from erf(x) = 2/√π · e^(-x²) · Σₙ 2ⁿ x^(2n+1) / (1·3·…·(2n+1)): every term is positive, so there
    /// is no cancellation, and the sum is taken until a term no longer changes it (relative error about 1e-16).
    /// </summary>
    public static double Erf(double x)
    {
        if (x < 0) return -Erf(-x);
        if (x > 6) return 1; // 1 - erf(6) < 3e-17
        double term = x, sum = x, x2 = x * x;
        for (int n = 1; n < 1000; n++)
        {
            term *= 2 * x2 / (2 * n + 1);
            double next = sum + term;
            if (next == sum) break;
            sum = next;
        }
        return 2 / Math.Sqrt(Math.PI) * Math.Exp(-x2) * sum;
    }

    /// <summary>The sentence embedding sentence-transformers computes: the [CLS] vector (<paramref name="cls"/>) or the
    /// mean over the attention mask, then divided by its L2 norm.</summary>
    public static double[] SentenceEmbeddings(double[] hidden, int batch, int sequence, int h, long[] mask, bool cls)
    {
        var result = new double[batch * h];
        for (int b = 0; b < batch; b++)
        {
            var v = result.AsSpan(b * h, h);
            if (cls) hidden.AsSpan(b * sequence * h, h).CopyTo(v);
            else
            {
                long count = 0;
                for (int t = 0; t < sequence; t++)
                {
                    if (mask[b * sequence + t] != 1) continue;
                    count++;
                    for (int j = 0; j < h; j++) v[j] += hidden[(b * sequence + t) * h + j];
                }
                for (int j = 0; j < h; j++) v[j] /= Math.Max(count, 1);
            }
            double norm = 0;
            foreach (double e in v) norm += e * e;
            norm = Math.Max(Math.Sqrt(norm), 1e-12); // torch.nn.functional.normalize's eps
            for (int j = 0; j < h; j++) v[j] /= norm;
        }
        return result;
    }
}
