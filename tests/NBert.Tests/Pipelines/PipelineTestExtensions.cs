using NBert.Pipelines;

namespace NBert.Tests.Pipelines;

internal static class PipelineTestExtensions
{
    /// <summary>The pipeline with <see cref="Pipeline.BatchSize"/> set, in one expression.</summary>
    public static T WithBatchSize<T>(this T pipeline, int batchSize) where T : Pipeline
    {
        pipeline.BatchSize = batchSize;
        return pipeline;
    }
}
