using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace NBert.Training;

/// <summary>The training loss (and evaluation metrics, on a second axis from 0 to 1) of a metrics.jsonl as an SVG chart.</summary>
public static class LossCurve
{
    /// <summary>Draws <paramref name="metricsPath"/>'s <c>loss</c> and the <c>eval_*</c> metrics that lie in [0, 1] against
    /// <c>step</c>, and writes the chart to <paramref name="svgPath"/> (atomically: a temporary file, then a rename). Lines
    /// without a step are skipped; a missing metrics file gives empty axes.</summary>
    public static void Write(string svgPath, string metricsPath)
    {
        var loss = new List<(double Step, double Value)>();
        var evals = new Dictionary<string, List<(double, double)>>();
        if (File.Exists(metricsPath))
            foreach (var line in File.ReadLines(metricsPath))
            {
                if (JsonNode.Parse(line) is not JsonObject o || o["step"] is null) continue;
                double step = (double)o["step"]!;
                if (o["loss"] is { } l) loss.Add((step, (double)l));
                foreach (var (k, v) in o)
                    if (k.StartsWith("eval_", StringComparison.Ordinal) && v is JsonValue value && value.TryGetValue(out double d) && d is >= 0 and <= 1)
                        (evals.TryGetValue(k, out var list) ? list : evals[k] = []).Add((step, d));
            }
        AtomicFile.WriteAllText(svgPath, Render(loss, evals));
    }

    private static string Render(List<(double Step, double Value)> loss, Dictionary<string, List<(double, double)>> evals)
    {
        const int width = 720, height = 400, left = 60, right = 60, top = 30, bottom = 50;
        var inv = CultureInfo.InvariantCulture;
        double maxStep = Math.Max(1, loss.Concat(evals.Values.SelectMany(v => v)).Select(p => p.Item1).DefaultIfEmpty(1).Max());
        double maxLoss = loss.Count == 0 ? 1 : Math.Max(1e-9, loss.Max(p => p.Value)) * 1.05;
        double X(double step) => left + step / maxStep * (width - left - right);
        double Y(double v, double max) => height - bottom - v / max * (height - top - bottom);
        var sb = new StringBuilder();
        sb.Append(inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n");
        sb.Append(inv, $"<rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n");
        sb.Append(inv, $"<line x1=\"{left}\" y1=\"{height - bottom}\" x2=\"{width - right}\" y2=\"{height - bottom}\" stroke=\"black\"/>\n");
        sb.Append(inv, $"<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{height - bottom}\" stroke=\"black\"/>\n");
        for (int i = 0; i <= 4; i++)
        {
            double v = maxLoss * i / 4, s = maxStep * i / 4;
            sb.Append(inv, $"<text x=\"{left - 6}\" y=\"{Y(v, maxLoss) + 4:F1}\" text-anchor=\"end\">{v:G3}</text>\n");
            sb.Append(inv, $"<text x=\"{X(s):F1}\" y=\"{height - bottom + 16}\" text-anchor=\"middle\">{s:F0}</text>\n");
            if (evals.Count > 0) sb.Append(inv, $"<text x=\"{width - right + 6}\" y=\"{Y(i / 4.0, 1) + 4:F1}\">{i / 4.0:F2}</text>\n");
        }
        sb.Append(inv, $"<text x=\"{(left + width - right) / 2}\" y=\"{height - 12}\" text-anchor=\"middle\">step</text>\n");
        sb.Append(inv, $"<text x=\"{left}\" y=\"{top - 10}\">training loss</text>\n");
        if (loss.Count > 0)
            sb.Append(inv, $"<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"{string.Join(' ', loss.Select(p => string.Create(inv, $"{X(p.Step):F1},{Y(p.Value, maxLoss):F1}")))}\"/>\n");
        string[] colours = ["#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
        int c = 0;
        foreach (var (name, points) in evals)
        {
            string colour = colours[c++ % colours.Length];
            sb.Append(inv, $"<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{string.Join(' ', points.Select(p => string.Create(inv, $"{X(p.Item1):F1},{Y(p.Item2, 1):F1}")))}\"/>\n");
            sb.Append(inv, $"<text x=\"{width - right}\" y=\"{top - 10 + 0 * c}\" text-anchor=\"end\" fill=\"{colour}\" dy=\"{(c - 1) * 14}\">{name}</text>\n");
        }
        sb.Append("</svg>\n");
        return sb.ToString();
    }
}
