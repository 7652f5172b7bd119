# frozen_string_literal: true

# Schedules work for the workers of the Procfile:
#   ruby producer.rb +15551234567 "your code is 1234" 5    # deliver in 5 s

require "reactis"
require "json"

url = ENV.fetch("REDIS_URL", "redis://localhost:6379/0")
to, text, delay = ARGV
abort "usage: ruby producer.rb NUMBER TEXT [DELAY_SECONDS]" unless to && text

sms = Reactis::Queue.new("sms", url: url)
scheduled = sms.schedule(JSON.generate(to: to, text: text), delay: Float(delay || 0))
puts "scheduled #{scheduled.id}, due #{scheduled.due_at}"

# A conversation timeout, moved forward on every message of the user:
timeouts = Reactis::Queue.new("conversation-timeouts", url: url)
id = "conv:C042:U7"
timeouts.reschedule(id, delay: 300) || timeouts.schedule("", id: id, delay: 300)
p sms.stats
sms.close
timeouts.close
