using NBert.Training;

namespace NBert.Tests.Training;

/// <summary>The schedules other than the fixture's linear one, against transformers' formulas.</summary>
public class ScheduleTests
{
    [Fact]
    public void Cosine_warms_up_then_follows_half_a_cosine_to_zero()
    {
        var s = LearningRateSchedule.Create(SchedulerType.Cosine, 2.0, 2, 10);
        Assert.Equal([0.0, 1.0, 2.0], [s.At(0), s.At(1), s.At(2)]);
        Assert.Equal(2.0 * 0.5 * (1 + Math.Cos(Math.PI * 0.25)), s.At(4), 15);
        Assert.Equal(1.0, s.At(6), 15);
        Assert.Equal(0.0, s.At(10), 15);
    }

    [Fact]
    public void Constant_warms_up_then_stays()
    {
        var s = LearningRateSchedule.Create(SchedulerType.Constant, 0.5, 4, 10);
        Assert.Equal([0.0, 0.125, 0.25, 0.375, 0.5, 0.5], Enumerable.Range(0, 6).Select(i => s.At(i)).ToArray());
        Assert.Equal(0.5, LearningRateSchedule.Create(SchedulerType.Constant, 0.5, 0, 10).At(0));
        Assert.Equal(0.5, s.At(1000));
    }

    [Fact]
    public void Linear_decays_to_zero_and_stays_there()
    {
        var s = LearningRateSchedule.Create(SchedulerType.Linear, 1.0, 0, 4);
        Assert.Equal([1.0, 0.75, 0.5, 0.25, 0.0, 0.0], Enumerable.Range(0, 6).Select(i => s.At(i)).ToArray());
    }

    [Fact]
    public void Bad_settings_are_refused_by_name()
    {
        Assert.Contains("cyclic", Assert.Throws<ArgumentException>(() => LearningRateSchedule.Parse("cyclic")).Message);
        Assert.Equal(SchedulerType.Cosine, LearningRateSchedule.Parse("cosine"));
        Assert.Throws<ArgumentOutOfRangeException>(() => LearningRateSchedule.Create(SchedulerType.Linear, 1, -1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new AdamWOptions { Beta2 = 1 }.Validate());
    }
}
